"""What the README shows, generated from the code: `readme` (command table, public tables;
checked by `make lint`) and `images` (`make docs-images`: a report printed from the sandbox and
a screenshot of the dashboard)."""
