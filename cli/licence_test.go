package cli

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

// TestNewCmdLicence: add and remove take one licence name; a name that 002
// doesn't list is refused before any credentials are needed, naming the
// accepted ones.
func TestNewCmdLicence(t *testing.T) {
	add := func(f *Factory, runF func(*LicenceOptions) error) *cobra.Command {
		return newCmdLicenceChange(f, runF, true)
	}
	remove := func(f *Factory, runF func(*LicenceOptions) error) *cobra.Command {
		return newCmdLicenceChange(f, runF, false)
	}

	got, err := parseOpts(t, nil, add, "Microsoft 365 E5", "-o", "id")
	if checkParse(t, err, "") && (got.Name != "Microsoft 365 E5" || !got.Add || got.Format != FormatID) {
		t.Errorf("add parsed %+v", got)
	}
	got, err = parseOpts(t, nil, remove, "office-365-e5")
	if checkParse(t, err, "") && (got.Name != "office-365-e5" || got.Add) {
		t.Errorf("remove parsed %+v", got)
	}
	_, err = parseOpts(t, nil, add)
	checkParse(t, err, "name")
	_, err = parseOpts(t, nil, remove, "a", "b")
	checkParse(t, err, `got unexpected "b"`)

	got, err = parseOpts(t, nil, add, "Power Apps Premium")
	if got != nil || keyhold.ErrorCode(err) != keyhold.CodeBadRequest || !strings.Contains(keyhold.ErrorMessage(err), "Microsoft 365 E5 Compliance") {
		t.Errorf("add of a licence 002 doesn't list: %+v, %v", got, err)
	}
}
