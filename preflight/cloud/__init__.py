"""The cloud layer: one session (`session`) that calls the generated Alibaba Cloud clients, paced per action.

Its parts: the table of `actions`, the background SDK `imports`, `credentials`, `clients`, `failures` as CloudError,
`pacing`, and the `-v` `trace`.
"""
