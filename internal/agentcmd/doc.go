// Package agentcmd owns a0agent's command line: running the agent, seeding
// sample data, and managing the authorized CLI keys (authorize, keys,
// revoke), each an options struct and a runX function that tests call.
package agentcmd
