"""The Textual app over the trainer's event stream (see issue: the terminal app)."""
