"""datatrail.demo."""
