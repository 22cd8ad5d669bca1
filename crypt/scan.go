package crypt

import "bytes"

// OccursIn reports whether k's bytes occur anywhere in data. It exists so
// that tests and audits can scan files and databases for leaked key material
// without the key ever leaving this package. A destroyed key occurs nowhere.
func (k *Key) OccursIn(data []byte) bool {
	b, err := k.bytes()
	if err != nil {
		return false
	}
	return bytes.Contains(data, b)
}
