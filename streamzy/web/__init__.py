"""The HTTP edge: Quart blueprints that parse, call one service and render.

``site.create_quart`` assembles it: the request hooks (identity, templating, route_limits,
access, csrf_hook, errors) and one blueprint factory per area, each handed only the
services it uses. Nothing here imports ``streamzy.storage`` (tests/web/test_layering.py).
"""
