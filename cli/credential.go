package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

func newCmdSPCredential(f *Factory) *cobra.Command {
	cmd := newGroup("credential", "Manage a service principal's credentials")
	cmd.AddCommand(newCmdSPCredentialAdd(f, nil))
	return cmd
}

// SPCredentialAddOptions are the parsed arguments of "keyhold identity sp
// credential add".
type SPCredentialAddOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.CertificateDirectory, error)
	Format Format

	SP   string // object id or app id
	Cert string // a PEM or DER file
}

func newCmdSPCredentialAdd(f *Factory, runF func(*SPCredentialAddOptions) error) *cobra.Command {
	opts := &SPCredentialAddOptions{IO: f.IO, Client: connect(f, func(c *khttp.Client) keyhold.CertificateDirectory { return c })}
	cmd := &cobra.Command{
		Use:   "add --sp APP_ID --cert cert.pem",
		Short: "Add a certificate a service principal signs in with",
		Long: `Upload the public certificate (PEM or DER) of a key the application holds. The
application then signs in with client assertions signed by that key, as
azidentity's ClientCertificateCredential does. Only the public certificate
is sent: a file holding a private key is refused before anything is sent.
The key must be RSA, 2048 bits or more. Needs the Global Administrator role.`,
		Example: `  openssl req -x509 -newkey rsa:2048 -nodes -keyout app.key -out app.pem -days 365 -subj /CN=contoso-automation
  keyhold identity sp credential add --sp 6f1c…-app-id --cert app.pem`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "sp", "cert"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return spCredentialAddRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.SP, "sp", "", "The service principal's app (client) id or object `ID`")
	cmd.Flags().StringVar(&opts.Cert, "cert", "", "The certificate `FILE` (PEM or DER)")
	return cmd
}

func spCredentialAddRun(opts *SPCredentialAddOptions) error {
	cert, err := os.ReadFile(opts.Cert)
	if err != nil {
		return fmt.Errorf("reading the certificate: %w", err)
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	cc, err := c.AddClientCertificate(opts.Ctx, opts.SP, cert)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		return printJSON(opts.IO.Out, cc)
	}
	fmt.Fprintf(opts.IO.Out, "Added certificate %s to service principal %s\n", cc.Thumbprint, cell(opts.SP))
	tw := newTable(opts.IO.Out)
	row(tw, "  Subject:", cc.Subject)
	row(tw, "  Thumbprint (SHA-1):", cc.Thumbprint)
	row(tw, "  x5t#S256:", cc.ThumbprintSHA256)
	row(tw, "  Valid from:", timestamp(cc.NotBefore))
	row(tw, "  Valid until:", timestamp(cc.NotAfter))
	return tw.Flush()
}
