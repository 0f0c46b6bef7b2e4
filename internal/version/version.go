package version

// Version of a0cli and a0agent.
var Version = "0.1.0-dev"
