"""App: what a person runs: the `symlstm` command (`cli/`: parse, call, print) and the local web
page with its JSON API (`serve`, `static/`)."""
