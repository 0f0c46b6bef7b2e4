//go:build !unix

package spool

import "errors"

func freeBytes(string) (int64, error) {
	return 0, errors.New("free space not measured on this platform")
}
