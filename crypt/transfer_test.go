package crypt

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/kwp/subtle"
)

// TestTransferBlob checks the blob's fields and layout against Azure's
// specification, taking it apart by hand: OAEP with SHA-1 under the KEK,
// then AES-KWP of the PKCS#8 key; and that a wrong KEK or an altered
// blob does not unwrap.
func TestTransferBlob(t *testing.T) {
	kek, err := GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	target, err := GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	const kid = "https://kv.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef"
	blob, err := NewTransferBlob(&kek.PublicKey, kid, target)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(blob, &j); err != nil {
		t.Fatal(err)
	}
	h := j["header"].(map[string]any)
	if j["schema_version"] != "1.0.0" || h["kid"] != kid || h["alg"] != "dir" || h["enc"] != "CKM_RSA_AES_KEY_WRAP" || j["generator"] == "" {
		t.Fatalf("blob fields: %s", blob)
	}
	ct, err := base64.RawURLEncoding.DecodeString(j["ciphertext"].(string))
	if err != nil {
		t.Fatal(err)
	}
	aesKey, err := rsa.DecryptOAEP(sha1.New(), nil, kek, ct[:256], nil)
	if err != nil || len(aesKey) != 32 {
		t.Fatalf("the RSA layer is not OAEP-SHA1 of an AES-256 key: %d bytes, %v", len(aesKey), err)
	}
	kwp, _ := subtle.NewKWP(aesKey)
	if _, err := kwp.Unwrap(ct[256:]); err != nil {
		t.Fatalf("the second layer is not AES-KWP: %v", err)
	}
	got, err := UnwrapTransferBlob(kek, blob)
	if err != nil || !got.Equal(target) {
		t.Fatalf("round trip: %v", err)
	}

	other, _ := GenerateRSAKey(2048)
	if _, err := UnwrapTransferBlob(other, blob); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("another KEK: %v", err)
	}
	ct[len(ct)-1] ^= 1
	j["ciphertext"] = base64.RawURLEncoding.EncodeToString(ct)
	altered, _ := json.Marshal(j)
	if _, err := UnwrapTransferBlob(kek, altered); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("altered: %v", err)
	}
	for _, c := range []struct{ from, to, says string }{
		{`"1.0.0"`, `"2.0.0"`, "schema_version"},
		{`"dir"`, `"RSA-OAEP"`, "header.alg"},
		{`"CKM_RSA_AES_KEY_WRAP"`, `"A256KW"`, "header.enc"},
		{kid, "", "no kid"},
	} {
		_, err := ParseTransferBlob(bytes.Replace(blob, []byte(c.from), []byte(c.to), 1))
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Fatalf("%s → %s: %v", c.from, c.to, err)
		}
	}
}
