// Package deps pins modules that packages under construction will import,
// so that go mod tidy keeps them while the tree grows. Remove when unused.
package deps

import (
	_ "github.com/klauspost/compress/gzip"
	_ "github.com/klauspost/pgzip"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/crypto/ssh"
	_ "golang.org/x/term"
)
