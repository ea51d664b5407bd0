"""kact's shared contracts: public event models, their CloudEvents envelope, the NATS layout, the KACT_*
environment both services read, and how a process started by `kact up` follows it."""
