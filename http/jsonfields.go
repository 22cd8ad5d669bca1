package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
)

// jsonFields is the shape of a request body whose every field must be
// known: each name maps to the fields of its value, nil for a value that
// has none (a string, a number). An array's elements take the fields of
// the array. encoding/json ignores unknown fields, and DisallowUnknownFields
// names neither the path nor the fields that are known; this does both.
type jsonFields map[string]jsonFields

// checkFields refuses, with CodeBadParameter, a field of body that fields
// does not know, naming it by its path (lifetimeActions[0].trigger.x) and
// listing the fields known there; what describes the body ("a key
// rotation policy"). The body is valid JSON already (decodeJSON has read
// it); types are left to the decoder.
func checkFields(body []byte, fields jsonFields, what, example string) error {
	return walkFields(json.RawMessage(body), fields, "", what, example)
}

// CheckRotationPolicyFields refuses, as a PUT of a key rotation policy
// does, a field of body that azkeys.KeyRotationPolicy does not have, with
// CodeBadParameter naming it. Clients that decode a policy with the SDK,
// which drops unknown fields, call it first so that a misspelt field is
// not silently sent as a policy without it.
func CheckRotationPolicyFields(body []byte) error {
	return checkFields(body, rotationPolicyFields, "a key rotation policy", exampleRotationPolicy)
}

func walkFields(raw json.RawMessage, fields jsonFields, path, what, example string) error {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if fields == nil || len(raw) == 0 {
		return nil
	}
	switch raw[0] {
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil // the decoder reports it
		}
		for i, e := range elems {
			if err := walkFields(e, fields, fmt.Sprintf("%s[%d]", path, i), what, example); err != nil {
				return err
			}
		}
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil
		}
		names := make([]string, 0, len(obj))
		for name := range obj {
			names = append(names, name)
		}
		slices.Sort(names) // the same error for the same body
		for _, name := range names {
			sub, ok := fields[name]
			field := name
			if path != "" {
				field = path + "." + name
			}
			if !ok {
				known := make([]string, 0, len(fields))
				for k := range fields {
					known = append(known, k)
				}
				slices.Sort(known)
				where := "the body"
				if path != "" {
					where = path
				}
				return keyhold.Errorf(keyhold.CodeBadParameter, "field %q is not a field of %s: %s takes %s, as in %s",
					keyhold.Clip(field), what, where, strings.Join(known, ", "), example)
			}
			if err := walkFields(obj[name], sub, field, what, example); err != nil {
				return err
			}
		}
	}
	return nil
}
