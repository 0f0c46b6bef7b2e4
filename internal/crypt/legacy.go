package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"io"
)

// NewLegacyReader decrypts a file of the original appliance: AES-256-CTR with
// key and IV from OpenSSL's EVP_BytesToKey (MD5, one iteration, no salt), as
// `openssl enc -aes-256-ctr -md md5 -nosalt -k PASSWORD` and Node's
// crypto.createCipher make. Such files carry no MAC and no password check:
// a wrong password or a damaged file yields garbage, not an error, so the
// caller must validate the plaintext (gzip and tar do, partially).
func NewLegacyReader(r io.Reader, password []byte) io.Reader {
	key, iv := evpBytesToKeyMD5(password)
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic("crypt: aes with a 32-byte key: " + err.Error()) // cannot happen
	}
	return &cipher.StreamReader{S: cipher.NewCTR(block, iv[:]), R: r}
}

// evpBytesToKeyMD5 is EVP_BytesToKey(AES-256, MD5, salt=nil, count=1):
// D_1 = MD5(password), D_i = MD5(D_{i-1} || password); key||iv = D_1||D_2||D_3.
func evpBytesToKeyMD5(password []byte) (key [32]byte, iv [16]byte) {
	var out []byte
	var prev []byte
	for len(out) < len(key)+len(iv) {
		h := md5.New()
		h.Write(prev)
		h.Write(password)
		prev = h.Sum(nil)
		out = append(out, prev...)
	}
	copy(key[:], out)
	copy(iv[:], out[len(key):])
	clear(out)
	return key, iv
}
