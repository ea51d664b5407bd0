"""kact's shared contracts: public event models, their CloudEvents envelope, the NATS layout."""
