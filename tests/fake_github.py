"""A fake GitHub REST API on 127.0.0.1 for the tests of gate comment and gate publish.

It keeps pull requests, issue comments, releases and assets in memory, records
every request, serves list endpoints in pages with `Link` headers (at most
`page_size` items a page, so a test can force pagination with a handful), and
answers as GitHub does where gate relies on it: 401 without the token, 422 for a
comment over 65,536 characters, 422 for an upload to a published (immutable)
release, no drafts from /releases/tags/{tag}.

    with FakeGitHub() as github:
        github.add_pull(7, head_sha="ab" * 20)
        ... GITHUB_API_URL=github.api_url, GITHUB_TOKEN=FakeGitHub.TOKEN ...
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeGitHub:
    TOKEN = "fake-token"
    BOT = "github-actions[bot]"

    def __init__(self, repo: str = "octo/models", page_size: int = 100) -> None:
        self.repo = repo
        self.page_size = page_size
        self.pulls: dict[int, dict] = {}
        self.comments: list[dict] = []
        self.releases: list[dict] = []
        self.assets: list[dict] = []
        self.requests: list[Recorded] = []
        # (METHOD, path regex) -> Answer given instead of the normal one
        self.failures: list[tuple[str, re.Pattern[str], Answer]] = []
        self.commit_pulls_answer: Answer | None = None  # e.g. Answer(422, ...) for a commit the endpoint does not know
        self.link_base: str | None = None  # a different base for the Link header's URLs
        self.delay_s = 0.0
        self.server_errors: list[str] = []  # tracebacks of the fake's own bugs, raised when it stops
        self._ids = iter(range(1000, 10**9))
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # Setting the scene.

    def add_pull(self, number: int, *, head_sha: str, state: str = "open") -> dict:
        pull = {
            "number": number,
            "state": state,
            "head": {"sha": head_sha, "ref": "feature"},
            "html_url": f"https://github.test/{self.repo}/pull/{number}",
        }
        self.pulls[number] = pull
        return pull

    def add_comment(self, issue: int, body: str, *, login: str = BOT) -> dict:
        comment_id = next(self._ids)
        comment = {
            "id": comment_id,
            "issue": issue,
            "body": body,
            "user": {"login": login},
            "html_url": f"https://github.test/{self.repo}/pull/{issue}#issuecomment-{comment_id}",
        }
        self.comments.append(comment)
        return comment

    def add_release(self, tag: str, *, draft: bool) -> dict:
        release_id = next(self._ids)
        release = {
            "id": release_id,
            "tag_name": tag,
            "name": tag,
            "draft": draft,
            "html_url": f"https://github.test/{self.repo}/releases/tag/{tag}",
            "upload_url": f"{self.origin}/uploads/repos/{self.repo}/releases/{release_id}/assets{{?name,label}}",
        }
        self.releases.append(release)
        return release

    def add_asset(self, release: dict, name: str, data: bytes) -> dict:
        asset = {
            "id": next(self._ids),
            "release_id": release["id"],
            "name": name,
            "size": len(data),
            "state": "uploaded",
            "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
            "data": data,
        }
        self.assets.append(asset)
        return asset

    def fail(self, method: str, path: str, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Answer requests matching `method` and the `path` regex with an error, as GitHub words it."""
        self.failures.append((method, re.compile(path), Answer(status, {"message": message}, headers or {})))

    def comments_on(self, issue: int) -> list[dict]:
        return [comment for comment in self.comments if comment["issue"] == issue]

    def assets_of(self, release: dict) -> dict[str, bytes]:
        return {asset["name"]: asset["data"] for asset in self.assets if asset["release_id"] == release["id"]}

    def calls(self, method: str | None = None) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests if method is None or r.method == method]

    # The server.

    @property
    def origin(self) -> str:
        assert self._server is not None, "start the fake first (with FakeGitHub() as github)"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        # Under a path, as on GitHub Enterprise, so the client's URL joining is tested too.
        return f"{self.origin}/api"

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._serve(self)

            do_POST = do_PATCH = do_DELETE = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # Stopping the fake waits for the requests it is still answering, so none can print later, during
            # another test.
            daemon_threads = False
            block_on_close = True

            def handle_error(self, request: object, client_address: object) -> None:
                # A client that hangs up early (a timeout, a refused request) is no error of the fake's; the
                # default prints "Exception occurred during processing of request from ..." on stderr, where
                # a test reading stderr finds it. Anything else is a bug in the fake: raised when it stops.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    fake.server_errors.append(traceback.format_exc())

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        assert not self.server_errors, "the fake GitHub failed:\n" + "\n".join(self.server_errors)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        query = dict(urllib.parse.parse_qsl(url.query))
        with self._lock:
            self.requests.append(Recorded(handler.command, url.path, query, body, dict(handler.headers)))
            answer = self._answer(handler.command, url.path, query, body, handler.headers)
        if self.delay_s:
            time.sleep(self.delay_s)
        data = b"" if answer.body is None else json.dumps(answer.body).encode()
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, method: str, path: str, query: dict[str, str], body: bytes, headers: Any) -> Answer:
        if headers.get("Authorization") != f"Bearer {self.TOKEN}":
            return Answer(401, {"message": "Bad credentials"})
        for fail_method, pattern, answer in self.failures:
            if fail_method == method and pattern.fullmatch(path):
                return answer
        repo = f"/repos/{self.repo}"
        api = "/api" + repo
        uploads = "/uploads" + repo
        payload = json.loads(body) if body and not path.startswith(uploads) else {}
        routes = [
            ("GET", rf"{api}/pulls/(\d+)", lambda n: self._pull(int(n))),
            (
                "GET",
                rf"{api}/pulls",
                lambda: self._page(
                    path,
                    query,
                    [
                        p
                        for p in sorted(self.pulls.values(), key=lambda p: p["number"])
                        if query.get("state", "open") in ("all", p["state"])
                    ],
                ),
            ),
            (
                "GET",
                rf"{api}/commits/([0-9a-f]{{40}})/pulls",
                lambda sha: (
                    self.commit_pulls_answer
                    or self._page(path, query, [p for p in self.pulls.values() if p["head"]["sha"] == sha])
                ),
            ),
            (
                "GET",
                rf"{api}/issues/(\d+)/comments",
                lambda n: self._page(path, query, [_public(c) for c in self.comments_on(int(n))]),
            ),
            ("POST", rf"{api}/issues/(\d+)/comments", lambda n: self._post_comment(int(n), payload)),
            ("PATCH", rf"{api}/issues/comments/(\d+)", lambda c: self._patch_comment(int(c), payload)),
            ("GET", rf"{api}/releases", lambda: self._page(path, query, list(reversed(self.releases)))),
            ("GET", rf"{api}/releases/tags/(.+)", lambda tag: self._published_by_tag(tag)),
            ("POST", rf"{api}/releases", lambda: self._create_release(payload)),
            ("PATCH", rf"{api}/releases/(\d+)", lambda r: self._patch_release(int(r), payload)),
            (
                "GET",
                rf"{api}/releases/(\d+)/assets",
                lambda r: self._page(path, query, [_public(a) for a in self.assets if a["release_id"] == int(r)]),
            ),
            ("DELETE", rf"{api}/releases/assets/(\d+)", lambda a: self._delete_asset(int(a))),
            ("POST", rf"{uploads}/releases/(\d+)/assets", lambda r: self._upload(int(r), query, body)),
        ]
        for route_method, pattern, respond in routes:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                return respond(*match.groups())
        return Answer(404, {"message": "Not Found"})

    def _page(self, path: str, query: dict[str, str], items: list[Any]) -> Answer:
        per_page = min(int(query.get("per_page", 30)), self.page_size)
        page = int(query.get("page", 1))
        headers = {}
        last = max(1, -(-len(items) // per_page))
        if page < last:
            base = (self.link_base or self.origin) + path

            def link(number: int) -> str:
                return f"{base}?{urllib.parse.urlencode({**query, 'page': number})}"

            headers["Link"] = f'<{link(page + 1)}>; rel="next", <{link(last)}>; rel="last"'
        return Answer(200, items[(page - 1) * per_page : page * per_page], headers)

    def _pull(self, number: int) -> Answer:
        return Answer(200, self.pulls[number]) if number in self.pulls else Answer(404, {"message": "Not Found"})

    def _post_comment(self, issue: int, payload: dict) -> Answer:
        if issue not in self.pulls:
            return Answer(404, {"message": "Not Found"})
        if len(payload["body"]) > 65_536:
            return _too_long()
        return Answer(201, _public(self.add_comment(issue, payload["body"])))

    def _patch_comment(self, comment_id: int, payload: dict) -> Answer:
        comment = next((c for c in self.comments if c["id"] == comment_id), None)
        if comment is None:
            return Answer(404, {"message": "Not Found"})
        if len(payload["body"]) > 65_536:
            return _too_long()
        comment["body"] = payload["body"]
        return Answer(200, _public(comment))

    def _published_by_tag(self, tag: str) -> Answer:
        found = [r for r in self.releases if r["tag_name"] == tag and not r["draft"]]
        return Answer(200, found[0]) if found else Answer(404, {"message": "Not Found"})

    def _create_release(self, payload: dict) -> Answer:
        release = self.add_release(payload["tag_name"], draft=bool(payload.get("draft")))
        return Answer(201, release)

    def _patch_release(self, release_id: int, payload: dict) -> Answer:
        release = next((r for r in self.releases if r["id"] == release_id), None)
        if release is None:
            return Answer(404, {"message": "Not Found"})
        if "draft" in payload:
            release["draft"] = bool(payload["draft"])
        return Answer(200, release)

    def _delete_asset(self, asset_id: int) -> Answer:
        asset = next((a for a in self.assets if a["id"] == asset_id), None)
        if asset is None:
            return Answer(404, {"message": "Not Found"})
        release = next(r for r in self.releases if r["id"] == asset["release_id"])
        if not release["draft"]:
            return Answer(422, {"message": "Cannot delete assets of an immutable release"})
        self.assets.remove(asset)
        return Answer(204)

    def _upload(self, release_id: int, query: dict[str, str], data: bytes) -> Answer:
        release = next((r for r in self.releases if r["id"] == release_id), None)
        if release is None:
            return Answer(404, {"message": "Not Found"})
        if not release["draft"]:
            return Answer(422, {"message": "Cannot upload assets to an immutable release"})
        name = query["name"]
        if any(a["release_id"] == release_id and a["name"] == name for a in self.assets):
            return Answer(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}],
                },
            )
        return Answer(201, _public(self.add_asset(release, name, data)))


def _public(record: dict) -> dict:
    """A record as the API shows it: without the fake's own bookkeeping."""
    return {key: value for key, value in record.items() if key not in ("data", "issue", "release_id")}


def _too_long() -> Answer:
    return Answer(
        422,
        {
            "message": "Validation Failed",
            "errors": [
                {
                    "resource": "IssueComment",
                    "code": "custom",
                    "field": "body",
                    "message": "body is too long (maximum is 65536 characters)",
                }
            ],
        },
    )
