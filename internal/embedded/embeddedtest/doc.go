// Package embeddedtest gives other packages' tests a real embedded FerretDB
// (package embedded) and a driver client to it, cleaned up with the test.
package embeddedtest
