"""Env fleets on Ray (`agentgym fleet up|status|down`, docs/fleet.md): env servers as Ray actors
(actor.py), a named controller actor that keeps the routing table and scales replicas (controller.py),
their configuration (config.py). Ray is imported only by actor.py and controller.py; what clients share
with this side (namespace, routing table, `ray://` addresses) is in agentgym.core.fleet."""
