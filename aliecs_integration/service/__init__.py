"""The environment manager as a long-running service: the reference's gRPC control API
(``o2control.Control``, ``protos/o2control.proto``) served by ``aliecs-integration serve``
(:mod:`.server`, :mod:`.servicer`), the ``Subscribe`` fan-out of published events
(:mod:`.fanout`), the workflow templates it can load (:mod:`.templates`) and a client
(:mod:`.client`)."""
