"""The Socket.IO edge: authentication at connect, chat events, and delivery after commit."""
