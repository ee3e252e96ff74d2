"""kitesaga's actors: each owns one piece of state and handles one message at a time."""
