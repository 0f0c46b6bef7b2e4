// Package devtest gives other packages' tests a real embedded FerretDB and a
// driver client to it, cleaned up with the test.
package devtest
