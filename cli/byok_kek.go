package cli

import (
	"context"
	"encoding/pem"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold"
)

// "keyhold byok kek create|download": the tenant's BYOK key-exchange key
// (KEK) in the server's PKCS#11 token, for uploading a key in the HSM
// key-transfer format:
//
//	keyhold byok kek create
//	keyhold byok kek download --out kek.pem
//	keyhold key transfer-blob --kek kek.pem --key key.pem --out key.byok
//	keyhold byok key upload --byok-file key.byok

// BYOKKEKOptions are the parsed arguments of "keyhold byok kek …".
type BYOKKEKOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.BYOKService, error)
	Format Format

	Action string // "create" or "download"
	Size   int    // create
	Out    string // download: the PEM file
}

func newCmdBYOKKEK(f *Factory) *cobra.Command {
	cmd := newGroup("kek", "Manage the tenant's BYOK key-exchange key (KEK)")
	cmd.AddCommand(newCmdBYOKKEKCreate(f, nil), newCmdBYOKKEKDownload(f, nil))
	return cmd
}

func newCmdBYOKKEKCreate(f *Factory, runF func(*BYOKKEKOptions) error) *cobra.Command {
	opts := &BYOKKEKOptions{IO: f.IO, Client: byokServices(f), Action: "create"}
	cmd := &cobra.Command{
		Use:   "create [--size 3072|4096]",
		Short: "Create the tenant's BYOK key-exchange key, or show the one it has",
		Long: `Create the tenant's key-exchange key (KEK): an RSA-HSM key in the server's
PKCS#11 token whose only operation is import. Wrap a BYOK key to its public
key ("keyhold byok kek download", then "keyhold key transfer-blob" or your
HSM vendor's BYOK tool) and upload the blob with "keyhold byok key upload
--byok-file". A tenant has one KEK: when it has one, this shows it.`,
		Example: `  keyhold byok kek create --size 4096`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if opts.Size != 3072 && opts.Size != 4096 {
				return usageErrorf("--size %d is not supported: a KEK is RSA-HSM 3072 or 4096", opts.Size)
			}
			return runBYOKKEK(opts, runF)
		},
	}
	cmd.Flags().IntVar(&opts.Size, "size", keyhold.BYOKKEKDefaultSize, "the KEK's size in `BITS`")
	return cmd
}

func newCmdBYOKKEKDownload(f *Factory, runF func(*BYOKKEKOptions) error) *cobra.Command {
	opts := &BYOKKEKOptions{IO: f.IO, Client: byokServices(f), Action: "download"}
	cmd := &cobra.Command{
		Use:   "download --out FILE.pem",
		Short: "Write the tenant's KEK public key to a PEM file, for transfer-blob",
		Long: `Write the public key of the tenant's key-exchange key to a PEM file
(SubjectPublicKeyInfo), with its kid in a "Kid" header, which "keyhold key
transfer-blob" reads.`,
		Example: `  keyhold byok kek download --out kek.pem`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "out"); err != nil {
				return err
			}
			return runBYOKKEK(opts, runF)
		},
	}
	cmd.Flags().StringVar(&opts.Out, "out", "", "PEM `FILE` to write")
	return cmd
}

func runBYOKKEK(opts *BYOKKEKOptions, runF func(*BYOKKEKOptions) error) error {
	if runF != nil {
		return runF(opts)
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var k *keyhold.BYOKKEK
	if opts.Action == "create" {
		k, err = c.CreateBYOKKEK(opts.Ctx, opts.Size)
	} else {
		k, err = c.BYOKKEK(opts.Ctx)
	}
	if err != nil {
		return err
	}
	if opts.Action == "download" {
		b, _ := pem.Decode([]byte(k.PublicKeyPEM))
		if b == nil {
			return fmt.Errorf("the server's answer for the tenant's KEK has no PEM public key")
		}
		b.Headers = map[string]string{pemKIDHeader: k.KID}
		if err := writeFileAtomic(opts.Out, pem.EncodeToMemory(b)); err != nil {
			return err
		}
		_, err = fmt.Fprintf(opts.IO.ErrOut, "Wrote the public key of %s to %s\n", k.KID, opts.Out)
		return err
	}
	switch opts.Format {
	case FormatJSON:
		return printJSON(opts.IO.Out, k)
	case FormatID:
		_, err = fmt.Fprintln(opts.IO.Out, k.KID)
		return err
	}
	tw := newTable(opts.IO.Out)
	row(tw, "KID", "SIZE", "OPS")
	row(tw, k.KID, fmt.Sprint(k.Size), fmt.Sprint(k.KeyOps))
	return tw.Flush()
}
