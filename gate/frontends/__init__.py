"""Model formats: each frontend recognises its files, inspects them before loading, loads and exports them.

FRONTENDS names them; Keras (.keras, .h5, SavedModel) is today's one. A new format is a module with a
`Frontend` (gate.frontends.base) and one entry here.
"""

from __future__ import annotations

from gate.frontends.base import Frontend
from gate.frontends.keras import KERAS

FRONTENDS: dict[str, Frontend] = {frontend.name: frontend for frontend in (KERAS,)}


def frontend_for(model_format: str) -> Frontend:
    """The frontend that reads a model of `model_format` (ModelFiles.format: "keras", "h5", "saved_model")."""
    return next(frontend for frontend in FRONTENDS.values() if model_format in frontend.formats.values())
