"""Replies that repair the assistant's mistakes: unknown names, empty results, related values."""
