// Package connlimit bounds the connections a server holds (issue 25.5): a
// net.Listener that keeps at most Limits.Max connections in total and
// Limits.PerSource from one source address, so that a flood cannot take
// every file descriptor or lock operators out.
//
// A connection counts as unproven until the server calls Prove on it (the
// agent does once a request authenticated). When a new connection would
// pass a limit, the oldest unproven connection (of that source first) is
// closed to make room: a flood of unauthenticated connections never keeps
// an operator's new connection out, it only churns itself. Without an
// unproven one, the oldest proven connection idle between requests (a
// kept-alive connection, SetIdle) is closed: its client dials again. A
// proven connection busy with a request is never closed that way; only
// when the limit is held by busy proven connections is the new one refused. CloseIfUnproven lets the
// server drop an unauthenticated connection once its refusal is written.
package connlimit
