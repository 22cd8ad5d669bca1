package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyhold/keyhold/server"
	"github.com/spf13/cobra"
)

// DoctorOptions are the parsed arguments of "keyhold doctor".
type DoctorOptions struct {
	IO        *IOStreams
	Ctx       context.Context
	DataDir   string
	MasterKey string // $KEYHOLD_MASTER_KEY
	// PKCS11Module and PKCS11Token name the server's token, if it has
	// one; PKCS11PIN is $KEYHOLD_PKCS11_PIN.
	PKCS11Module, PKCS11Token, PKCS11PIN string
}

// errFindings is doctor's failure once its findings are printed: exit 1,
// with a one-line summary.
var errFindings = errors.New("the data directory has problems: fix the FAIL lines above")

func newCmdDoctor(f *Factory, runF func(*DoctorOptions) error) *cobra.Command {
	opts := &DoctorOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check a data directory offline: database, master key, TLS files, permissions",
		Long: `Check a SQLite data directory without starting a server: the modes of the
directory and its secret files, SQLite's integrity check and the schema
version, whether the master key (KEYHOLD_MASTER_KEY, else <data>/master.key)
opens the sealed platform key, and whether the TLS certificate parses, is
current, matches its key and is signed by ca.pem. With --pkcs11-module and
--pkcs11-token (the PIN in KEYHOLD_PKCS11_PIN), as the server runs with, it
also compares each BYOK tenant's generation with the one the token recorded,
and names the tenants a restore of an older database locked out.

Every finding is printed, "ok" or "FAIL" with the fix; the exit code is 1
when any check fails. Doctor writes nothing, so it may run beside a server.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx = cmd.Context()
			opts.MasterKey = f.Getenv("KEYHOLD_MASTER_KEY")
			opts.PKCS11PIN = f.Getenv("KEYHOLD_PKCS11_PIN")
			if (opts.PKCS11Module == "") != (opts.PKCS11Token == "") {
				return usageErrorf("--pkcs11-module and --pkcs11-token go together: give both, as the server was started with")
			}
			if runF != nil {
				return runF(opts)
			}
			return doctorRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.DataDir, "data", server.DefaultDataDir, "Data `directory` of the server to check")
	cmd.Flags().StringVar(&opts.PKCS11Module, "pkcs11-module", "", "PKCS#11 `library` of the server's token, to check the BYOK generations it keeps (PIN from $KEYHOLD_PKCS11_PIN)")
	cmd.Flags().StringVar(&opts.PKCS11Token, "pkcs11-token", "", "`Label` of the server's PKCS#11 token (with --pkcs11-module)")
	return cmd
}

func doctorRun(opts *DoctorOptions) error {
	failed := false
	cfg := server.DoctorConfig{DataDir: opts.DataDir, MasterKey: opts.MasterKey,
		PKCS11Module: opts.PKCS11Module, PKCS11Token: opts.PKCS11Token, PKCS11PIN: opts.PKCS11PIN}
	for _, fd := range server.Doctor(opts.Ctx, cfg) {
		fmt.Fprintln(opts.IO.Out, cell(fd.String()))
		failed = failed || !fd.OK
	}
	if failed {
		return errFindings
	}
	return nil
}
