package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/keyhold/keyhold"
)

// Examples quoted by decoding errors, so that a message shows what to send.
const (
	exampleEnvironmentCreate = `{"location":"unitedstates","properties":{"displayName":"Contoso","environmentSku":"Production"}}`
	exampleEnvironmentPatch  = `{"properties":{"displayName":"Contoso","governanceConfiguration":{"protectionLevel":"Standard"}}}`
	exampleRow               = `{"name":"Contoso","revenue":1000}`
)

// readBody reads a whole request body, turning an overflow of the route's
// limit into CodeRequestTooLarge.
func readBody(r *nethttp.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if mb, ok := errors.AsType[*nethttp.MaxBytesError](err); ok {
		return nil, tooLarge(mb.Limit, "it was cut off there")
	} else if err != nil {
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	return body, nil
}

// tooLarge is the error for a body over limit bytes.
func tooLarge(limit int64, detail string) *keyhold.Error {
	return keyhold.Errorf(keyhold.CodeRequestTooLarge, "request body is larger than %d bytes: %s; send at most %d bytes", limit, detail, limit)
}

// decodeJSON decodes body, which must hold exactly one JSON object, into v.
func decodeJSON(body []byte, v any, example string) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body is empty: send a JSON object like %s", example)
	}
	if !utf8.Valid(body) {
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body is not valid UTF-8 at offset %d: send JSON text encoded in UTF-8", invalidUTF8Offset(body))
	}
	if trimmed[0] != '{' && json.Valid(body) {
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body is a JSON %s: send a JSON object like %s", jsonKind(trimmed[0]), example)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err, len(body), example)
	}
	off := dec.InputOffset()
	if rest := bytes.TrimLeft(body[off:], " \t\r\n"); len(rest) > 0 {
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body has more data after the JSON object, at offset %d: send exactly one JSON object like %s", len(body)-len(rest), example)
	}
	return nil
}

// describeJSONError turns an encoding/json error into a message that says
// where the body is wrong and what was expected there.
func describeJSONError(err error, n int, example string) error {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		// Offset counts the bytes read, the bad one included.
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body is not valid JSON: %s at offset %d; send a JSON object like %s", syntax.Error(), max(syntax.Offset-1, 0), example)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body is not valid JSON: it ends at offset %d in the middle of a value; send a complete JSON object like %s", n, example)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body is a JSON %s: send a JSON object like %s", typeErr.Value, example)
		}
		return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body field %q is a JSON %s at offset %d: it must be %s, as in %s", field, typeErr.Value, typeErr.Offset, goTypeName(typeErr.Type), example)
	}
	return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body is not a valid JSON object: %v; send a JSON object like %s", err, example)
}

// goTypeName names a Go type as the JSON value it decodes from.
func goTypeName(t reflect.Type) string {
	if t == nil {
		return "a different JSON type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a different JSON type"
}

// jsonKind names the kind of JSON value that starts with b.
func jsonKind(b byte) string {
	switch b {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// invalidUTF8Offset returns the offset of the first invalid UTF-8 byte.
func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// parseEnvironmentCreate decodes and validates the body of
// POST /providers/Microsoft.BusinessAppPlatform/environments.
func parseEnvironmentCreate(body []byte) (*keyhold.Environment, error) {
	var in struct {
		Location   string `json:"location"`
		Properties struct {
			DisplayName             string                   `json:"displayName"`
			EnvironmentSku          string                   `json:"environmentSku"`
			GovernanceConfiguration *governanceConfiguration `json:"governanceConfiguration"`
			FinanceAndOperations    *financeAndOperations    `json:"financeAndOperations"`
		} `json:"properties"`
	}
	if err := decodeJSON(body, &in, exampleEnvironmentCreate); err != nil {
		return nil, err
	}
	e := &keyhold.Environment{
		Location:    in.Location,
		DisplayName: in.Properties.DisplayName,
		SKU:         keyhold.EnvironmentSKU(in.Properties.EnvironmentSku),
	}
	if fo := in.Properties.FinanceAndOperations; fo != nil {
		e.FinOps, e.PowerPlatformIntegration = true, fo.PowerPlatformIntegration
	}
	if g := in.Properties.GovernanceConfiguration; g != nil && g.ProtectionLevel != "" {
		managed, err := parseProtectionLevel(g.ProtectionLevel)
		if err != nil {
			return nil, err
		}
		e.Managed = managed
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// parseEnvironmentPatch decodes and checks the body of
// PATCH …/scopes/admin/environments/{envId}.
func parseEnvironmentPatch(body []byte) (keyhold.EnvironmentUpdate, error) {
	var upd keyhold.EnvironmentUpdate
	var in struct {
		Properties *struct {
			DisplayName             *string `json:"displayName"`
			GovernanceConfiguration *struct {
				ProtectionLevel *string `json:"protectionLevel"`
			} `json:"governanceConfiguration"`
			FinanceAndOperations *struct {
				PowerPlatformIntegration *bool `json:"powerPlatformIntegration"`
			} `json:"financeAndOperations"`
			CreateFlowsInSolutions *bool `json:"createFlowsInSolutions"`
		} `json:"properties"`
	}
	if err := decodeJSON(body, &in, exampleEnvironmentPatch); err != nil {
		return upd, err
	}
	p := in.Properties
	if p == nil {
		return upd, nil
	}
	if p.DisplayName != nil {
		name := strings.TrimSpace(*p.DisplayName)
		switch {
		case name == "":
			return upd, keyhold.Errorf(keyhold.CodeBadRequest, "properties.displayName is empty: give the environment a name, or leave the field out to keep it")
		case len(name) > keyhold.MaxDisplayName:
			return upd, keyhold.Errorf(keyhold.CodeBadRequest, "properties.displayName is %d bytes long: use at most %d", len(name), keyhold.MaxDisplayName)
		}
		upd.DisplayName = p.DisplayName
	}
	if g := p.GovernanceConfiguration; g != nil && g.ProtectionLevel != nil {
		managed, err := parseProtectionLevel(*g.ProtectionLevel)
		if err != nil {
			return upd, err
		}
		upd.Managed = &managed
	}
	if fo := p.FinanceAndOperations; fo != nil {
		upd.PowerPlatformIntegration = fo.PowerPlatformIntegration
	}
	upd.CreateFlowsInSolutions = p.CreateFlowsInSolutions
	return upd, nil
}

// Protection levels of governanceConfiguration: Standard is a Managed
// Environment, Basic is not.
const (
	protectionStandard = "Standard"
	protectionBasic    = "Basic"
)

func parseProtectionLevel(s string) (managed bool, err error) {
	switch {
	case strings.EqualFold(s, protectionStandard):
		return true, nil
	case strings.EqualFold(s, protectionBasic):
		return false, nil
	}
	return false, keyhold.Errorf(keyhold.CodeBadRequest, "properties.governanceConfiguration.protectionLevel %q is not supported: use %q (Managed Environment on) or %q (off)", keyhold.Clip(s), protectionStandard, protectionBasic)
}

func protectionLevel(managed bool) string {
	if managed {
		return protectionStandard
	}
	return protectionBasic
}

// parseRow checks the body of PUT …/rows/{rowId}: one JSON object.
func parseRow(body []byte) (json.RawMessage, error) {
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' && utf8.Valid(t) && json.Valid(t) {
		return t, nil // the common case, in one pass and without a copy
	}
	var raw json.RawMessage // a bad body: decodeJSON says what is wrong with it
	if err := decodeJSON(body, &raw, exampleRow); err != nil {
		return nil, err
	}
	return raw, nil
}
