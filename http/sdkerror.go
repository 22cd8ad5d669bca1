package http

import (
	"encoding/json"
	"errors"
	"fmt"
	nethttp "net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/keyhold/keyhold"
)

// SDKError returns the *keyhold.Error that an official Azure SDK client's
// error carries, for code written against Keyhold's error type: for an
// *azcore.ResponseError, the code, inner code and message of the answer's
// Azure error body (a code derived from the status without one), with
// the SDK's error as the cause, and the HTTP status; ok is false for
// other errors (the request got no answer, or the credential failed),
// which are returned unchanged.
func SDKError(err error) (e *keyhold.Error, status int, ok bool) {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return nil, 0, false
	}
	e = &keyhold.Error{Code: re.ErrorCode, Err: err}
	if re.RawResponse != nil {
		if body, berr := runtime.Payload(re.RawResponse); berr == nil {
			var b errorBody
			if json.Unmarshal(body, &b) == nil {
				if e.Code == "" {
					e.Code = b.Error.Code
				}
				e.Message = b.Error.Message
				if b.Error.InnerError != nil {
					e.Inner = b.Error.InnerError.Code
				}
			}
		}
	}
	if e.Code == "" {
		e.Code = codeOfStatus(re.StatusCode)
	}
	if e.Message == "" {
		e.Message = fmt.Sprintf("the server answered %d %s without an error message", re.StatusCode, nethttp.StatusText(re.StatusCode))
	}
	return e, re.StatusCode, true
}
