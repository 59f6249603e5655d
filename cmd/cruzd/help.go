package main

import "github.com/cruzlog/cruzdb"

// HELP subcommands: "<COMMAND> HELP" replies a list of status lines, a
// usage line and then each subcommand with its description, indented, as
// Redis does. The descriptions say what cruzd does.
var helpTexts = map[string][]string{
	"client": {
		"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"GETNAME", "    Return the name of the current connection.",
		"ID", "    Return the ID of the current connection.",
		"INFO", "    Return information about the current connection.",
		"LIST [TYPE normal] [ID id [id ...]]", "    Return information about client connections.",
		"SETINFO <LIB-NAME|LIB-VER> <value>", "    Accepted and ignored.",
		"SETNAME <name>", "    Assign the name <name> to the current connection.",
		"HELP", "    Print this help.",
	},
	"config": {
		"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
		"SET <directive> <value>", "    Refused: cruzd takes its settings from flags at start.",
		"RESETSTAT", "    Accepted; cruzd's counters are Prometheus counters and are not reset.",
		"HELP", "    Print this help.",
	},
	"command": {
		"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"(no subcommand)", "    Return details about all commands cruzd serves.",
		"COUNT", "    Return the number of commands cruzd serves.",
		"DOCS [<command-name> ...]", "    Return documentation details about the given commands, or all.",
		"INFO [<command-name> ...]", "    Return details about the given commands, or all.",
		"LIST", "    Return the names of all commands cruzd serves.",
		"HELP", "    Print this help.",
	},
	"object": {
		"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"ENCODING <key>", "    Return the kind of internal representation used to store the value of <key>.",
		"FREQ <key>", "    Refused: cruzd tracks no access frequency.",
		"IDLETIME <key>", "    Always 0: cruzd tracks no access time.",
		"REFCOUNT <key>", "    Always 1: cruzd shares no values.",
		"HELP", "    Print this help.",
	},
	"memory": {
		"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"USAGE <key> [SAMPLES <count>]", "    Return the bytes cruzd stores for <key>: its metadata and elements with their keys.",
		"HELP", "    Print this help.",
	},
	"function": {
		"FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
		"FLUSH [ASYNC|SYNC]", "    Accepted: cruzd has no functions to delete.",
		"LIST", "    Return an empty list: cruzd runs no functions.",
		"HELP", "    Print this help.",
	},
}

// addHelp makes "<COMMAND> HELP" answer for every command of t that has a
// help text.
func addHelp(t map[string]*cmdSpec) {
	for name, lines := range helpTexts {
		sp := t[name]
		if sp == nil {
			continue
		}
		run := sp.run
		sp.run = func(c *conn, tx *cruzdb.Txn, args [][]byte) {
			if len(args) == 2 && eqFold(args[1], "help") {
				c.w.ArrayLen(len(lines))
				for _, l := range lines {
					c.w.Simple(l)
				}
				return
			}
			run(c, tx, args)
		}
	}
}
