"""What DRUM calls: runtime parameters, CSV input, batch scoring, chat, and the hooks behind custom.py."""
