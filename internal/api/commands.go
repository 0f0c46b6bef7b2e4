package api

// CommandSpec is one a0cli command: its name, usage line and summary, and
// whether it runs against a node. It is the one list both sides read: the
// CLI builds its commands, help and completion from it; the node's
// update-commands reply (GET /v1/commands) lists the ones marked Node.
type CommandSpec struct {
	Name    string
	Usage   string
	Summary string
	// Node: the command talks to a node (it needs -t HOST) and the node's
	// update-commands reply lists it.
	Node bool
}

// CommandList is every a0cli command, in the order `a0cli help` lists them.
var CommandList = []CommandSpec{
	{"create-key", "create-key [--type ed25519|rsa] [--force]", "make this workstation's key pair and print the public key", false},
	{"show-key", "show-key", "print the public key (register it on nodes with a0agent authorize)", false},
	{"delete-key", "delete-key", "delete this workstation's key pair", false},
	{"forget-node", "forget-node HOST:PORT", "forget a node's pinned certificate", false},
	{"ping", "ping", "check that the node answers", true},
	{"update-commands", "update-commands", "fetch and cache the commands the node accepts", true},
	{"set-as-backup", "set-as-backup <device> [force]", "give the node the backup role and its backup device", true},
	{"node-status", "node-status [--json]", "roles, device, free space, database size, agent version", true},
	{"logs", "logs [--since D] [--level L] [--job ID] [--tail N] [-f] [--json]", "print the agent's recent log (why a job failed), -f to follow it", true},
	{"backup", "backup [<password>] [--password P | --password-file F] [--to NAME]... [--to-all] [--no-password] [--wait]", "start a backup", true},
	{"backup-status", "backup-status [--wait]", "show the stored, running or failed backup (one JSON line); --wait follows a running one", true},
	{"backup-retrieve", "backup-retrieve [-o FILE] [--force] [--remote NAME]", "download the backup into backup-retrieve.tar.gz.enc", true},
	{"backup-delete", "backup-delete", "delete the stored backup", true},
	{"backup-copy", "backup-copy [--wait]", "copy the stored backup to the node's remote store now", true},
	{"backups", "backups [--json] | backups prune [--dry-run] [--json]", "list the local and remote backups; prune applies the retention policy", true},
	{"drill", "drill [--wait]", "run a restore drill of the stored backup now, into a throwaway server on the node (agent config \"drill\")", true},
	{"pitr-status", "pitr-status [--json]", "show the continuous oplog archive: what can be restored to a time, lag, gaps", true},
	{"backup-sensitive", "backup-sensitive [--password P | --password-file F] [--wait]", "back up the node's sensitive configuration", true},
	{"backup-sensitive-status", "backup-sensitive-status", "show the stored, running or failed sensitive backup", true},
	{"backup-sensitive-retrieve", "backup-sensitive-retrieve [-o FILE] [--force]", "download it into backup-sensitive-retrieve.tar.gz.enc", true},
	{"backup-sensitive-delete", "backup-sensitive-delete", "delete the stored sensitive backup", true},
	{"restore", "restore [FILE] [password options] [--identity FILE] [--drop] [--ns DB.COLL]... [--dry-run] [--plain] [--detach] [--stop-on-error] [--users-and-roles] [--remote NAME] [--to-time T | --to-ts T,I [--remote]]", "restore a backup onto the node (to a point in time with --to-time/--to-ts)", true},
	{"restore-status", "restore-status [--wait]", "show the running or last restore", true},
	{"cancel", "cancel [--json]", "cancel the job running on the node (backup, sensitive backup or restore) and say what it left", true},
	{"backup-cancel", "backup-cancel [--json]", "cancel the running backup (as cancel, refused when another job runs)", true},
	{"restore-cancel", "restore-cancel [--json]", "cancel the running restore (as cancel, refused when another job runs)", true},
	{"oplog-find", "oplog-find [--since T] [--until T] [--ns PATTERN] [--op drop,dropDatabase,rename,delete] [--identity FILE] [--json]", "list the destructive operations in the oplog archive and the live oplog, with the --to-ts that restores to just before each", true},
	{"restore-sensitive", "restore-sensitive FILE [password options] [--yes]", "put the sensitive configuration back on the node", true},
	{"recover", "recover --sensitive FILE --backup FILE [password options] [--yes] [--max-age-gap DURATION]", "recover a lost node from its two backups (keys, certificate pin, data, role)", true},
	{"verify", "verify FILE [password options] [--identity FILE] [--legacy] [--json] [--restore-test [--restore-test-dir DIR]] | verify --oplog DIR [FILE] [--identity FILE] [--json]", "check every byte of a backup file (or of downloaded oplog slices) offline and list what it holds", false},
	{"decrypt", "decrypt FILE [-o OUT] [password options] [--identity FILE] [--legacy]", "write the plain .tar.gz of a backup file", false},
	{"completion", "completion bash|zsh|fish", "print a shell completion script", false},
	{"version", "version", "print the version (as -V does)", false},
	{"help", "help [COMMAND]", "print this usage, or a command's usage, flags and examples", false},
}

// NodeCommands is the update-commands reply: the commands of CommandList
// that run against a node.
func NodeCommands() Commands {
	out := Commands{Commands: []Command{}}
	for _, c := range CommandList {
		if c.Node {
			out.Commands = append(out.Commands, Command{Name: c.Name, Usage: c.Usage, Summary: c.Summary})
		}
	}
	return out
}
