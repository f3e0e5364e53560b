"""The HTTP edge: Quart blueprints that parse, call one service and render."""
