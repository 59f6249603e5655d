// Package resp reads and writes the Redis serialization protocol, version 2
// (RESP2), as cruzd speaks it.
//
// The Reader is strict: a multibulk header line, every bulk header and every
// bulk payload must end with CRLF. Inline commands (a line of space-separated
// words, as telnet and some redis-cli paths send) are accepted too, with
// redis-cli's quoting. Malformed input is a *ProtocolError (errors.Is
// ErrProtocol); a limit exceeded is one whose Limit field says which.
//
// The Writer appends replies to a byte slice that the caller writes out once
// per batch of commands.
package resp
