package crypt

import (
	"encoding/binary"
	"fmt"
)

// ekPayloadFixed is the size of an EK payload without its environment id.
const ekPayloadFixed = 1 + 4 + 1 + KeySize

// EKPayload serialises an EK together with the environment and epoch it
// belongs to, for wrapping by a root key: RSA-OAEP offers no additional
// data, so the binding travels inside the wrapped bytes. Format v1:
// 0x01 | epoch(4, big endian) | len(envID)(1) | envID | ek(32).
//
// envID must be 1 to 255 bytes; a 36-character GUID gives a 74-byte
// payload, well under the 190 bytes RSA-2048 OAEP-SHA256 can wrap. It also
// fails for a destroyed ek. The payload holds the key: clear it once
// wrapped.
func EKPayload(envID string, epoch uint32, ek *Key) ([]byte, error) {
	kb, err := ek.bytes()
	if err != nil {
		return nil, err
	}
	if len(envID) == 0 || len(envID) > 255 {
		return nil, fmt.Errorf("crypt: environment id is %d bytes; an EK payload holds 1 to 255", len(envID))
	}
	p := make([]byte, 0, ekPayloadFixed+len(envID))
	p = append(p, formatV1)
	p = binary.BigEndian.AppendUint32(p, epoch)
	p = append(p, byte(len(envID)))
	p = append(p, envID...)
	p = append(p, kb...)
	return p, nil
}

// OpenEKPayload parses an unwrapped payload and returns the EK if it belongs
// to envID and epoch; otherwise an error that says which did not match.
//
// Every refusal (malformed payload, unknown version, other environment or
// epoch) wraps ErrDecrypt: a payload bound elsewhere is a wrapped key moved
// to where it doesn't belong. The caller still owns payload and should
// clear it.
func OpenEKPayload(envID string, epoch uint32, payload []byte) (*Key, error) {
	if len(payload) == 0 {
		return nil, decryptErrorf("EK payload is empty")
	}
	if payload[0] != formatV1 {
		return nil, decryptErrorf("unknown EK payload format version 0x%02x", payload[0])
	}
	if len(payload) < ekPayloadFixed {
		return nil, decryptErrorf("EK payload is %d bytes; a version 1 payload has at least %d", len(payload), ekPayloadFixed)
	}
	n := int(payload[5])
	if want := ekPayloadFixed + n; len(payload) != want {
		return nil, decryptErrorf("EK payload is %d bytes; its %d-byte environment id makes %d", len(payload), n, want)
	}
	if got := string(payload[6 : 6+n]); got != envID {
		return nil, decryptErrorf("EK payload belongs to environment %q, not %q", got, envID)
	}
	if got := binary.BigEndian.Uint32(payload[1:5]); got != epoch {
		return nil, decryptErrorf("EK payload belongs to epoch %d of environment %q, not epoch %d", got, envID, epoch)
	}
	return KeyFromBytes(payload[6+n:])
}
