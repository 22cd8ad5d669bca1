package crypt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Master key file handling. The master key is 32 random bytes, kept as
// base64 text in a file of mode 0600 or in an environment variable.

// GenerateMasterKeyFile creates path (O_EXCL, mode 0600) holding a new
// master key, and returns it.
//
// The file holds the key in standard base64 and a newline. It and its
// directory are synced before GenerateMasterKeyFile returns: a key lost to a
// crash after the server used it would make everything it sealed
// unreadable. It refuses to overwrite an existing file (the error wraps
// fs.ErrExist), and removes the file again if writing it fails.
func GenerateMasterKeyFile(path string) (*Key, error) {
	k, err := NewKey()
	if err != nil {
		return nil, err
	}
	text := make([]byte, base64.StdEncoding.EncodedLen(KeySize)+1)
	defer clear(text)
	base64.StdEncoding.Encode(text, k.b[:])
	text[len(text)-1] = '\n'

	if err := writeNewFile(path, text); err != nil {
		k.Destroy()
		return nil, fmt.Errorf("crypt: writing master key file: %w", err)
	}
	return k, nil
}

// writeNewFile writes data to a new file at path, mode 0600, and syncs the
// file and its directory.
func writeNewFile(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// Windows can't sync a directory; elsewhere it makes the new name
	// durable.
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ParseMasterKey decodes the base64 text of a master key (surrounding white
// space allowed). Its errors say what is wrong without echoing the text.
func ParseMasterKey(text []byte) (*Key, error) {
	t := bytes.TrimSpace(text)
	if len(t) == 0 {
		return nil, errors.New("crypt: master key is empty")
	}
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(t)))
	defer clear(buf)
	n, err := base64.StdEncoding.Decode(buf, t)
	if err != nil {
		// The decoder's error gives an offset into the secret; leave it out.
		return nil, errors.New("crypt: master key is not valid base64")
	}
	if n != KeySize {
		return nil, fmt.Errorf("crypt: master key is %d bytes; want %d", n, KeySize)
	}
	return KeyFromBytes(buf[:n])
}
