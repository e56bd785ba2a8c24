"""Names AWS accepts (pure): ELBv2's 32-character rule after Pulumi's autonaming suffix, and
Route53's 64-character CallerReference after the provider's unique suffix."""

import re

from hypothesis import given
from hypothesis import strategies as st

from model.aws_names import AUTONAMED_ELB_NAME, HEALTH_CHECK_REFERENCE, aws_name

ELB_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")  # ELBv2 API reference


@given(st.text(min_size=1, max_size=120))
def test_an_autonamed_load_balancer_or_target_group_name_is_one_elbv2_takes(name):
    physical = f"{aws_name(name, AUTONAMED_ELB_NAME)}-1a2b3c4"  # Pulumi's autonaming suffix
    assert ELB_NAME.match(physical), physical


@given(st.text(min_size=1, max_size=120))
def test_a_health_check_reference_fits_the_caller_reference(name):
    reference = aws_name(name, HEALTH_CHECK_REFERENCE)
    assert len(f"{reference}-terraform-20261129180000000000000001") <= 64


@given(st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=80), st.text(max_size=5))
def test_names_stay_stable_and_distinct(name, other):
    assert aws_name(name, 24) == aws_name(name, 24)
    if other and name != name + other:
        assert aws_name(name, 24) != aws_name(name + other, 24)


def test_names_that_fit_are_unchanged_so_no_resource_is_renamed():
    assert aws_name("shop-https", AUTONAMED_ELB_NAME) == "shop-https"
    adopted = "game-gw-6d4f8e2a-1c3b-4e5d-9f7a-8b0c1d2e3f40"  # an unnamed Octavia listener
    assert len(aws_name(adopted, AUTONAMED_ELB_NAME)) <= AUTONAMED_ELB_NAME
    assert aws_name(adopted, AUTONAMED_ELB_NAME).startswith("game-gw-6d4f8e2a")
