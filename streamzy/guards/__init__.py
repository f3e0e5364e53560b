"""Security guards shared by the HTTP and Socket.IO edges: one implementation each."""
