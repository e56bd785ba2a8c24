"""What the Kubernetes version tests share: the key path every cluster's version sits under."""

from __future__ import annotations

K = "hybrid-infra:clusters"
