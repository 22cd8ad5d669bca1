package crypt

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// The fuzz targets run on their seeds in every go test; run one for real
// with, say, go test ./crypt -run '^$' -fuzz FuzzOpen -fuzztime 1m.

func FuzzOpen(f *testing.F) {
	sk := mustStoreKey(f, testKey(f, 0x20), testEnv, 7, "rows")
	// Every fuzz worker process runs this body: valid must be the same in
	// each, so its nonce must not be random.
	setRand(f, 1)
	valid, err := sk.Seal("t/1", 1, []byte(`{"a":1}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(flipBit(valid, 60))
	f.Add(append([]byte{0x07}, valid[1:]...))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 7})
	f.Add(bytes.Repeat([]byte{1}, itemOverhead))
	f.Fuzz(func(t *testing.T, data []byte) {
		pt, err := sk.Open("t/1", 1, data)
		if err == nil {
			if !bytes.Equal(data, valid) {
				t.Fatalf("Open authenticated bytes it never sealed: %x", data)
			}
			if string(pt) != `{"a":1}` {
				t.Fatalf("Open = %q", pt)
			}
			return
		}
		if !errors.Is(err, ErrDecrypt) || pt != nil {
			t.Fatalf("Open = %x, %v; want nil and ErrDecrypt", pt, err)
		}
	})
}

func FuzzEpoch(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 7})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{2, 0, 0, 0, 7})
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, header []byte) {
		epoch, err := Epoch(header)
		valid := len(header) >= 5 && header[0] == 1
		if valid != (err == nil) {
			t.Fatalf("Epoch(%x) error = %v; valid header: %v", header, err, valid)
		}
		if err != nil {
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Epoch error %v does not wrap ErrDecrypt", err)
			}
			return
		}
		if want := binary.BigEndian.Uint32(header[1:5]); epoch != want {
			t.Fatalf("Epoch(%x) = %d; want %d", header, epoch, want)
		}
	})
}

func FuzzDecryptingReader(f *testing.F) {
	// Every fuzz worker process runs this body, and tink's salt is random:
	// take the stream from the committed vectors so valid is the same in each.
	var v itemVector
	for _, sv := range loadVectors(f).StreamV1 {
		if sv.Name == "small file" {
			v = sv
		}
	}
	sk := v.storeKey(f)
	valid, plaintext := []byte(v.Ciphertext), []byte(v.plaintext())
	if len(valid) == 0 || len(plaintext) == 0 {
		f.Fatal(`the "small file" stream vector is missing`)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(valid[:headerSize+tinkHeader])
	f.Add(flipBit(valid, 8*(len(valid)-3)))
	f.Add(append(bytes.Clone(valid), 0))
	f.Add([]byte{1, 0, 0, 0, 7, byte(tinkHeader)})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decrypt(sk, v.ItemID, v.Version, bytes.NewReader(data))
		if err == nil {
			if !bytes.Equal(data, valid) || !bytes.Equal(got, plaintext) {
				t.Fatalf("decrypted %q from bytes it never encrypted: %x", got, data)
			}
			return
		}
		if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("error %v does not wrap ErrDecrypt", err)
		}
		if len(got) != 0 {
			t.Fatalf("returned %q from a one-segment stream that failed", got)
		}
	})
}

func FuzzOpenEKPayload(f *testing.F) {
	valid, err := EKPayload(testEnv, 7, testKey(f, 0x20))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(append([]byte{2}, valid[1:]...))
	f.Add([]byte{1, 0, 0, 0, 7, 0})
	f.Add([]byte{1, 0, 0, 0, 7, 255})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		k, err := OpenEKPayload(testEnv, 7, payload)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) || k != nil {
				t.Fatalf("OpenEKPayload = %v, %v; want nil and ErrDecrypt", k, err)
			}
			return
		}
		defer k.Destroy()
		again, err := EKPayload(testEnv, 7, k)
		if err != nil || !bytes.Equal(again, payload) {
			t.Fatalf("accepted payload %x does not serialise back to itself: %x, %v", payload, again, err)
		}
	})
}

func FuzzParseMasterKey(f *testing.F) {
	f.Add([]byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, KeySize)) + "\n"))
	f.Add([]byte(base64.StdEncoding.EncodeToString(make([]byte, 31))))
	f.Add([]byte("not base64!"))
	f.Add([]byte(" \r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, text []byte) {
		k, err := ParseMasterKey(text)
		if err != nil {
			msg := err.Error()
			if k != nil || !(strings.HasPrefix(msg, "crypt: master key is ") && (strings.HasSuffix(msg, " is empty") ||
				strings.HasSuffix(msg, "not valid base64") || strings.HasSuffix(msg, "bytes; want 32"))) {
				t.Fatalf("ParseMasterKey = %v, %q; want nil and one of its documented errors", k, msg)
			}
			return
		}
		defer k.Destroy()
		want, derr := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(text)))
		if derr != nil || !bytes.Equal(want, k.b[:]) {
			t.Fatalf("ParseMasterKey accepted %q as a key it doesn't encode", text)
		}
	})
}
