"""A small GitHub REST client on urllib.request: JSON in and out, `Link` pagination, one error type.

It is what `gate comment` and `gate publish` talk to GitHub through, and it
uses only the standard library: `gate comment` runs in a workflow that installs
gate with `--no-deps`. The base URL comes from `GITHUB_API_URL` (set on every
GitHub Actions runner, and by the tests to a fake server), the token from
`GITHUB_TOKEN` or `GH_TOKEN`.

Every failure becomes one `GitHubError` whose message names the request, the
HTTP status, the API's own `message` and what to check, usually the token
permission the call needs, which each call passes as `need`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

from gate import __version__
from gate.errors import GitHubError

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
DEFAULT_TIMEOUT_S = 30.0
PER_PAGE = 100  # the most the REST API serves per page
MAX_PAGES = 1000  # a guard against a `Link: rel="next"` that never ends
# github.com serves release uploads from another host than the API; GitHub Enterprise serves both from one.
UPLOAD_ORIGINS = {"https://api.github.com": "https://uploads.github.com"}
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


class GitHub:
    """One repository-independent connection to the REST API."""

    def __init__(self, *, api_url: str = DEFAULT_API_URL, token: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(api_url)
        if parsed.scheme not in ("https", "http") or not parsed.netloc or parsed.query or parsed.fragment:
            raise GitHubError(f"GITHUB_API_URL: expected an http(s) URL such as {DEFAULT_API_URL}, got {api_url!r}")
        self.api_url = api_url.rstrip("/")
        self.origin = f"{parsed.scheme}://{parsed.netloc}"
        self.timeout_s = timeout_s
        self._token = token
        self._user_agent = f"gate/{__version__}"  # GitHub refuses requests without a User-Agent

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> GitHub:
        """The client a workflow step configures: GITHUB_API_URL, and GITHUB_TOKEN or GH_TOKEN."""
        environ = os.environ if environ is None else environ
        token = environ.get("GITHUB_TOKEN") or environ.get("GH_TOKEN")
        if not token:
            raise GitHubError(
                "no GitHub token: set GITHUB_TOKEN or GH_TOKEN (in a workflow step: "
                "env: GITHUB_TOKEN: ${{ github.token }})"
            )
        return cls(api_url=environ.get("GITHUB_API_URL") or DEFAULT_API_URL, token=token)

    # The verbs. `path` is relative to the API ("/repos/o/r/pulls/1"); `need` names the token permission.

    def get(self, path: str, *, need: str, params: Mapping[str, str | int] | None = None) -> Any:
        return self.request("GET", path, need=need, params=params)[0]

    def post(self, path: str, payload: Any, *, need: str) -> Any:
        return self.request("POST", path, need=need, payload=payload)[0]

    def patch(self, path: str, payload: Any, *, need: str) -> Any:
        return self.request("PATCH", path, need=need, payload=payload)[0]

    def delete(self, path: str, *, need: str) -> None:
        self.request("DELETE", path, need=need)

    def paginate(self, path: str, *, need: str, params: Mapping[str, str | int] | None = None) -> Iterator[Any]:
        """Every item of a list endpoint, following the `Link: <…>; rel="next"` header page by page."""
        url: str | None = self._url(path, {**(params or {}), "per_page": PER_PAGE})
        for _ in range(MAX_PAGES):
            if url is None:
                return
            items, headers = self.request("GET", url, need=need)
            if not isinstance(items, list):
                raise GitHubError(
                    f"GitHub API GET {self._shown(url)}: expected a JSON list, got {type(items).__name__}"
                )
            yield from items
            url = next_page(headers.get("Link", ""))
            if url is not None and not url.startswith(self.api_url + "/"):
                # The token goes with every request: never to a host the API did not say it is.
                raise GitHubError(
                    f"GitHub API GET {self._shown(path)}: the next page {url!r} is not under "
                    f"{self.api_url}; refusing to send the token there"
                )
        raise GitHubError(f"GitHub API GET {self._shown(path)}: more than {MAX_PAGES} pages; giving up")

    def upload(self, url: str, name: str, data: bytes, *, need: str) -> Any:
        """POST `data` as release asset `name` to a release's `upload_url` (its `{?name,label}` template removed)."""
        base = url.split("{", 1)[0]
        parsed = urllib.parse.urlsplit(base)
        origin = f"{parsed.scheme}://{parsed.netloc}"
        if origin not in (self.origin, UPLOAD_ORIGINS.get(self.origin)):
            raise GitHubError(
                f"GitHub API: the release's upload_url {url!r} is on neither {self.origin} nor its "
                "upload host; refusing to send the token there"
            )
        target = f"{base}?{urllib.parse.urlencode({'name': name})}"
        return self.request("POST", target, need=need, data=data, content_type="application/octet-stream")[0]

    def request(
        self,
        method: str,
        path: str,
        *,
        need: str,
        params: Mapping[str, str | int] | None = None,
        payload: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[Any, Mapping[str, str]]:
        """Send one request; return the decoded JSON body (None when empty) and the response headers."""
        url = path if "://" in path else self._url(path, params)
        if payload is not None:
            data, content_type = json.dumps(payload).encode(), "application/json"
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", API_VERSION)
        request.add_header("User-Agent", self._user_agent)
        if content_type:
            request.add_header("Content-Type", content_type)
        # Unredirected: urllib copies ordinary headers onto a redirect, to whatever host it names.
        request.add_unredirected_header("Authorization", f"Bearer {self._token}")
        what = f"{method} {self._shown(url)}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body, headers = response.read(), response.headers
        except urllib.error.HTTPError as error:
            with error:
                raise GitHubError(
                    failure_message(what, error.code, error.read(), error.headers, need), status=error.code
                ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise GitHubError(
                f"GitHub API {what}: could not reach {self.origin} ({reason}); check GITHUB_API_URL and the network"
            ) from None
        if not body.strip():
            return None, headers
        try:
            return json.loads(body), headers
        except ValueError:
            raise GitHubError(f"GitHub API {what}: the answer is not JSON: {body[:200]!r}") from None

    def _url(self, path: str, params: Mapping[str, str | int] | None) -> str:
        url = self.api_url + path
        return f"{url}?{urllib.parse.urlencode(params)}" if params else url

    def _shown(self, url: str) -> str:
        """A URL as messages show it: relative to the API when it is under it."""
        return url[len(self.api_url) :] if url.startswith(self.api_url + "/") else url


def next_page(link_header: str) -> str | None:
    """The `rel="next"` URL of a `Link` header, or None on the last page."""
    for url, rel in _LINK.findall(link_header):
        if "next" in rel.split():
            return url
    return None


# What to check for each status, after the API's own message.
_HINTS = {
    401: "the token was refused: check that GITHUB_TOKEN (or GH_TOKEN) is set to a valid token",
    403: "check that the workflow job's token has the '{need}' permission (its permissions: block)",
    404: "check --repo, and that the token has the '{need}' permission (GitHub answers 404 for what a token "
    "may not see)",
    409: "the repository is in a state that refuses this; check it on GitHub",
    410: "the resource is gone (disabled or deleted on GitHub)",
    422: "GitHub refused the request's content",
}


def failure_message(what: str, status: int, body: bytes, headers: Any, need: str) -> str:
    """One line: the request, the status, the API's message (and field errors), then what to check."""
    message, details = "", []
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        message = str(answer.get("message", ""))
        for error in answer.get("errors") or []:
            if isinstance(error, dict):
                details.append(
                    str(
                        error.get("message")
                        or "/".join(str(error[key]) for key in ("resource", "field", "code") if key in error)
                    )
                )
            else:
                details.append(str(error))
    elif body:
        message = body[:200].decode("utf-8", "replace")
    if status == 429 or (status == 403 and headers.get("X-RateLimit-Remaining") == "0"):
        hint = "the API rate limit is used up; re-run the job later"
    elif status >= 500:
        hint = "GitHub had an internal error; re-run the job"
    else:
        hint = _HINTS.get(status, "check the request on GitHub").format(need=need)
    said = f": {message}" if message else ""
    if details:
        said += f" ({'; '.join(details)})"
    return f"GitHub API {what} failed: HTTP {status}{said}; {hint}"
