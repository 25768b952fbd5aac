"""Model formats: each frontend recognises its files, inspects them before loading, loads and exports them.

FRONTENDS names them; Keras (.keras, .h5, SavedModel) is today's one.
"""
