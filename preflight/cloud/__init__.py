"""The cloud layer: one session that calls the generated Alibaba Cloud clients, paced per action."""
