package deploy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

func testEvaluator() *Evaluator {
	scope := Scope{SubscriptionID: "sub1", TenantID: "t1",
		ResourceGroup: &keyhold.ResourceGroup{SubscriptionID: "sub1", Name: "rg1", Location: "westeurope", Tags: map[string]string{"env": "prod"}}}
	params := map[string]any{"policyName": "contoso", "count": float64(2), "list": []any{"a", "b"}, "obj": map[string]any{"Key": "v"}}
	defaults := map[string]any{"vaultName": "[concat(parameters('policyName'), '-kv')]", "loop": "[parameters('loop')]"}
	vars := map[string]any{
		"vaultId": "[resourceId('Microsoft.KeyVault/vaults', parameters('vaultName'))]",
		"nested":  map[string]any{"id": "[variables('vaultId')]", "n": float64(1)},
		"self":    "[variables('self')]",
	}
	return NewEvaluator(scope, params, defaults, vars)
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"plain string", "contoso", "contoso"},
		{"escaped bracket", "[[not an expression]", "[not an expression]"},
		{"string literal", "['it''s']", "it's"},
		{"parameter, name in any case", "[parameters('POLICYNAME')]", "contoso"},
		{"default from another parameter", "[parameters('vaultName')]", "contoso-kv"},
		{"resource group location", "[resourceGroup().location]", "westeurope"},
		{"resource group id", "[resourceGroup().id]", "/subscriptions/sub1/resourceGroups/rg1"},
		{"resource group tag", "[resourceGroup().tags.env]", "prod"},
		{"subscription id", "[subscription().subscriptionId]", "sub1"},
		{"tenant id", "[subscription().tenantId]", "t1"},
		{"concat of strings and numbers", "[concat('a', parameters('count'), 'b', true())]", "a2btrue"},
		{"concat of arrays", "[concat(parameters('list'), parameters('list'))]", []any{"a", "b", "a", "b"}},
		{"resourceId in the deployment's group", "[resourceId('Microsoft.KeyVault/vaults', 'kv1')]",
			"/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1"},
		{"resourceId in another group", "[resourceId('keys', 'Microsoft.KeyVault/vaults', 'kv1')]",
			"/subscriptions/sub1/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/kv1"},
		{"resourceId in another subscription", "[resourceId('sub2', 'keys', 'Microsoft.KeyVault/vaults', 'kv1')]",
			"/subscriptions/sub2/resourceGroups/keys/providers/Microsoft.KeyVault/vaults/kv1"},
		{"resourceId of a child", "[resourceId('Microsoft.KeyVault/vaults/keys', 'kv1', 'k1')]",
			"/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1/keys/k1"},
		{"variable through a variable", "[variables('nested').id]", "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/contoso-kv"},
		{"index an array", "[parameters('list')[1]]", "b"},
		{"index an object, any case", "[parameters('obj')['key']]", "v"},
		{"toLower and toUpper", "[concat(toLower('AB'), toUpper('cd'))]", "abCD"},
		{"guid is stable", "[guid('a', 'b')]", "[guid('a', 'b')]"},
		{"spaces", "[ concat( 'a' , 'b' ) ]", "ab"},
		{"number", "[parameters('list')[0]]", "a"},
		{"objects and arrays are walked", map[string]any{"x": []any{"[parameters('policyName')]", float64(1), nil, true}},
			map[string]any{"x": []any{"contoso", float64(1), nil, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := testEvaluator().Evaluate("x", tc.in)
			if err != nil {
				t.Fatalf("Evaluate(%v): %v", tc.in, err)
			}
			want := tc.want
			if tc.name == "guid is stable" {
				want, _ = testEvaluator().Evaluate("x", tc.in)
				if g, _ := got.(string); len(g) != 36 {
					t.Fatalf("guid() = %v", got)
				}
				other, _ := testEvaluator().Evaluate("x", "[guid('a', 'c')]")
				if other == got {
					t.Fatalf("guid() of other strings is the same: %v", got)
				}
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Fatalf("Evaluate(%v) = %s, want %s", tc.in, g, w)
			}
		})
	}
}

func TestEvaluateRefusals(t *testing.T) {
	tests := []struct {
		name, in string
		hints    []string
	}{
		{"unsupported function", "[reference('x').outputs]", []string{"'[reference('x').outputs]'", "'reference'", "parameters, variables"}},
		{"unknown parameter", "[parameters('nope')]", []string{"no parameter 'nope'"}},
		{"unknown variable", "[variables('nope')]", []string{"no variable 'nope'"}},
		{"self-reference", "[variables('self')]", []string{"variables.self", "refers to itself"}},
		{"parameter default refers to itself", "[parameters('loop')]", []string{"parameters.loop", "refers to itself"}},
		{"unclosed string", "[concat('a)]", []string{"not closed"}},
		{"missing parenthesis", "[concat('a']", []string{"not closed"}},
		{"bare word", "[foo]", []string{"function call"}},
		{"trailing garbage", "[concat('a') x]", []string{"unexpected"}},
		{"wrong argument count", "[parameters()]", []string{"takes 1 argument"}},
		{"property of a string", "[parameters('policyName').x]", []string{"only objects have properties"}},
		{"missing property", "[resourceGroup().nope]", []string{"no property 'nope'"}},
		{"index out of range", "[parameters('list')[5]]", []string{"not in the array"}},
		{"resourceId without a type", "[resourceId('a', 'b')]", []string{"resource type"}},
		{"resourceId with too few names", "[resourceId('Microsoft.KeyVault/vaults/keys', 'kv1')]", []string{"takes 2 name(s)"}},
		{"concat of an object", "[concat('a', parameters('obj'))]", []string{"argument 2 is a object"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testEvaluator().Evaluate("resources[0].name", tc.in)
			wantErr(t, err, keyhold.CodeInvalidTemplate, append([]string{"Deployment template validation failed"}, tc.hints...)...)
		})
	}
}

// TestEvaluateBounds: a small template can't make the server build or
// encode an enormous value.
func TestEvaluateBounds(t *testing.T) {
	vars := map[string]any{"s0": strings.Repeat("x", 1000)}
	for i := 1; i <= 12; i++ {
		prev := fmt.Sprintf("variables('s%d')", i-1)
		vars[fmt.Sprintf("s%d", i)] = "[concat(" + prev + ", " + prev + ")]"
	}
	ten := func(s string) []any {
		out := make([]any, 10)
		for i := range out {
			out[i] = s
		}
		return out
	}
	vars["a0"] = ten("leaf")
	for i := 1; i <= 6; i++ {
		vars[fmt.Sprintf("a%d", i)] = ten(fmt.Sprintf("[variables('a%d')]", i-1))
	}
	vars["list"] = ten("x")
	for i := 1; i <= 4; i++ {
		prev := fmt.Sprintf("variables('l%d')", i-1)
		if i == 1 {
			prev = "variables('list')"
		}
		vars[fmt.Sprintf("l%d", i)] = "[concat(" + strings.Repeat(prev+", ", 9) + prev + ")]"
	}
	e := NewEvaluator(Scope{SubscriptionID: "s"}, nil, nil, vars)

	_, err := e.Evaluate("x", "[variables('s12')]")
	wantErr(t, err, keyhold.CodeInvalidTemplate, "string of more than")
	_, err = e.Evaluate("x", "[variables('l4')]")
	wantErr(t, err, keyhold.CodeInvalidTemplate, "array of more than")

	small, err := e.Evaluate("x", "[variables('a3')]")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSize("x", small); err != nil {
		t.Fatalf("CheckSize of 1111 values: %v", err)
	}
	huge, err := e.Evaluate("resources[0].tags", "[variables('a6')]") // shared, so cheap to build
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, CheckSize("resources[0].tags", huge), keyhold.CodeInvalidTemplate, "resources[0].tags", "expands to more than")
}
