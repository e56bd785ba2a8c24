// Command pulumi-resource-kubernetes serves the Pulumi kubernetes provider built from its Go
// module. The module's own main embeds schema files that only its generate step writes, so
// scripts/control-plane.sh writes them beside this file (from the module's schema.json) first.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
