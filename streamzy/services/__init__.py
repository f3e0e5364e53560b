"""Use cases. Plain async functions and small classes: no Quart, no socketio imports."""
