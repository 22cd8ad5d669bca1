package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/spf13/cobra"
)

func newCmdDeployment(f *Factory) *cobra.Command {
	cmd := newGroup("deployment", "Deploy ARM templates into resource groups (Microsoft.Resources/deployments)")
	cmd.Long = `Deploy ARM templates, such as the spec's enterprise policy template, into a
resource group, in Incremental mode. Keyhold deploys enterprise policies,
key vaults and role assignments, and evaluates the template expressions such
templates use: parameters(), variables(), resourceGroup(), subscription(),
concat(), resourceId(), toLower(), toUpper(), guid().`
	cmd.AddCommand(newCmdDeploymentCreate(f, nil), newCmdDeploymentShow(f, nil))
	return cmd
}

// deploymentServices returns a function that connects with the saved
// login, as Factory.Client does, for the deployment commands.
func deploymentServices(f *Factory) func() (keyhold.DeploymentService, error) {
	return connect(f, func(c *khttp.Client) keyhold.DeploymentService { return c.Policies() })
}

// DeploymentCreateOptions are the parsed arguments of "keyhold deployment
// create".
type DeploymentCreateOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.DeploymentService, error)
	Format Format
	// LoginSubscription reads the default subscription.
	LoginSubscription func() (string, error)

	PolicyTarget        // the deployment's group and name
	TemplateFile string // a path, or "-" for stdin
	// Parameters are NAME=VALUE pairs and @FILE parameter files, in order;
	// later ones win.
	Parameters []string
}

func newCmdDeploymentCreate(f *Factory, runF func(*DeploymentCreateOptions) error) *cobra.Command {
	opts := &DeploymentCreateOptions{IO: f.IO, Client: deploymentServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:   "create -g RG -n NAME --template-file FILE [--parameters NAME=VALUE | --parameters @FILE]...",
		Short: "Deploy a template into a resource group",
		Long: `Deploy an ARM template into a resource group as the deployment NAME, in
Incremental mode: resources it names are created or updated, others are left
alone, so deploying the same template again changes nothing.

--parameters NAME=VALUE gives one parameter (a string, or JSON for a
parameter of type int, bool, object or array); --parameters @FILE reads a
parameters file ({"NAME":{"value":…}}, or a deploymentParameters.json with
"$schema", "contentVersion" and "parameters"). Both repeat; later ones win.

A resource that fails stops the deployment, which is kept as Failed with its
error: see "keyhold deployment show".`,
		Example: `  keyhold deployment create -g contoso-rg -n cmk-policy --template-file enterprise-policy.json
  keyhold deployment create -g contoso-rg -n cmk-policy --template-file t.json --parameters policyName=contoso-cmk --parameters @params.json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "resource-group", "name", "template-file"); err != nil {
				return err
			}
			for _, p := range opts.Parameters {
				if strings.HasPrefix(p, "@") {
					if len(p) == 1 {
						return usageErrorf("--parameters @ needs a file name: --parameters @params.json")
					}
					continue
				}
				if k, _, ok := strings.Cut(p, "="); !ok || k == "" {
					return usageErrorf("--parameters %q is not valid: use --parameters NAME=VALUE or --parameters @FILE", p)
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return deploymentCreateRun(opts)
		},
	}
	opts.PolicyTarget.flags(cmd)
	cmd.Flags().Lookup("name").Usage = "Deployment `NAME`"
	cmd.Flags().StringVarP(&opts.TemplateFile, "template-file", "f", "", "The template (`FILE`), or - for stdin")
	cmd.Flags().StringArrayVarP(&opts.Parameters, "parameters", "p", nil, "A parameter (`NAME=VALUE`) or a parameters file (@FILE), repeatable")
	return cmd
}

func deploymentCreateRun(opts *DeploymentCreateOptions) error {
	var tmpl []byte
	var err error
	if opts.TemplateFile == "-" {
		tmpl, err = io.ReadAll(opts.IO.In)
	} else {
		tmpl, err = os.ReadFile(opts.TemplateFile)
	}
	if err != nil {
		return fmt.Errorf("reading the template: %w", err)
	}
	if !json.Valid(tmpl) {
		return fmt.Errorf("the template %s is not valid JSON: fill in every placeholder (with quotes around strings)", opts.TemplateFile)
	}
	params, err := deploymentParameters(tmpl, opts.Parameters)
	if err != nil {
		return err
	}
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	d, _, err := c.Deploy(opts.Ctx, sub, opts.ResourceGroup, opts.Name, keyhold.DeploymentRequest{Mode: keyhold.DeploymentModeIncremental, Template: tmpl, Parameters: params})
	if err != nil {
		return err
	}
	return printDeployment(opts.IO.Out, opts.Format, d)
}

// deploymentParameters builds the deployment's parameters from NAME=VALUE
// pairs and @FILE files. A VALUE is a string, unless the template declares
// the parameter of another type, when it is read as JSON.
func deploymentParameters(tmpl []byte, args []string) (json.RawMessage, error) {
	if len(args) == 0 {
		return nil, nil
	}
	var decl struct {
		Parameters map[string]struct {
			Type string `json:"type"`
		} `json:"parameters"`
	}
	json.Unmarshal(tmpl, &decl) // a template without declarations takes strings
	out := map[string]json.RawMessage{}
	for _, a := range args {
		if file, ok := strings.CutPrefix(a, "@"); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("reading the parameters file: %w", err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, fmt.Errorf("the parameters file %s is not a JSON object: %v", file, err)
			}
			// A deploymentParameters.json wraps them.
			if inner, ok := m["parameters"]; ok && (m["$schema"] != nil || m["contentVersion"] != nil) {
				m = nil
				if err := json.Unmarshal(inner, &m); err != nil {
					return nil, fmt.Errorf("the parameters of %s are not a JSON object: %v", file, err)
				}
			}
			for k, v := range m {
				out[k] = v
			}
			continue
		}
		k, v, _ := strings.Cut(a, "=")
		value, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		for name, d := range decl.Parameters {
			if strings.EqualFold(name, k) {
				switch strings.ToLower(d.Type) {
				case "int", "bool", "object", "secureobject", "array":
					if !json.Valid([]byte(v)) {
						return nil, usageErrorf("--parameters %s: the template declares %s of type %s, so give its value as JSON", k, name, d.Type)
					}
					value = []byte(v)
				}
			}
		}
		out[k], _ = json.Marshal(map[string]json.RawMessage{"value": value})
	}
	return json.Marshal(out)
}

// printDeployment shows a deployment: as JSON, its id, or a summary.
func printDeployment(w io.Writer, format Format, d *keyhold.Deployment) error {
	switch format {
	case FormatJSON:
		return printJSON(w, d)
	case FormatID:
		_, err := fmt.Fprintln(w, d.ID())
		return err
	}
	tw := newTable(w)
	row(tw, "ID:", d.ID())
	row(tw, "Name:", d.Name)
	row(tw, "State:", d.ProvisioningState)
	row(tw, "Mode:", d.Mode)
	row(tw, "Time:", timestamp(d.UpdatedAt))
	if len(d.OutputResources) == 0 {
		row(tw, "Resources:", "-")
	}
	for i, id := range d.OutputResources {
		label := ""
		if i == 0 {
			label = "Resources:"
		}
		row(tw, label, id)
	}
	if d.ErrorCode != "" {
		row(tw, "Error:", d.ErrorCode+": "+d.ErrorMessage)
	}
	if len(d.Outputs) > 0 {
		row(tw, "Outputs:", string(d.Outputs))
	}
	return tw.Flush()
}

// DeploymentShowOptions are the parsed arguments of "keyhold deployment
// show".
type DeploymentShowOptions struct {
	IO     *IOStreams
	Ctx    context.Context
	Client func() (keyhold.DeploymentService, error)
	Format Format
	// LoginSubscription reads the default subscription.
	LoginSubscription func() (string, error)

	PolicyTarget // the deployment's group and name
}

func newCmdDeploymentShow(f *Factory, runF func(*DeploymentShowOptions) error) *cobra.Command {
	opts := &DeploymentShowOptions{IO: f.IO, Client: deploymentServices(f), LoginSubscription: loginSubscriptionID(f)}
	cmd := &cobra.Command{
		Use:   "show -g RG -n NAME",
		Short: "Show a deployment: its state, resources, and error if it failed",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx, opts.Format = cmd.Context(), f.Format
			if err := requireFlags(cmd, "resource-group", "name"); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return deploymentShowRun(opts)
		},
	}
	opts.PolicyTarget.flags(cmd)
	cmd.Flags().Lookup("name").Usage = "Deployment `NAME`"
	return cmd
}

func deploymentShowRun(opts *DeploymentShowOptions) error {
	sub, err := resolveSubscription(opts.Subscription, opts.LoginSubscription)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	d, err := c.Deployment(opts.Ctx, sub, opts.ResourceGroup, opts.Name)
	if err != nil {
		return err
	}
	return printDeployment(opts.IO.Out, opts.Format, d)
}
