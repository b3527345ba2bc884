"""The OpenAI- and Anthropic-compatible gateway at /v1/ (README "Gateway").

`turn.py` maps a call onto a chat turn with no conversation; `openai_format.py` and
`anthropic_format.py` read and write each wire format; `errors.py` the error bodies; `views.py`
the HTTP side (key, rate limit, request id, cost header); `urls.py` the routes.
"""
