"""`agentgym.core` (the top-level `core/` folder): what the server, the client and the trainer share.

The typed trajectory record and its codecs (`trajectory`), the chat framing that rollout and
training share (`chat`), structured logging (`logs`), gRPC plumbing (`rpc`), TLS and bearer
tokens for every server and client (`security`) and loading weights into policy servers
(`weights`). It imports none of `agentgym.server`, `.client` or `.trainer`.
"""
