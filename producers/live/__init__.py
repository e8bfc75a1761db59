"""Live venue connections: websockets that survive the internet, REST polls, the runner."""
