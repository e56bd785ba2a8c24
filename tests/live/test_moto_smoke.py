"""The moto server fixture serves the AWS calls the NLB twin and the sync rely on."""


def test_nlb_with_ip_target_group_round_trips(ec2, elbv2):
    vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.10.{i}.0/24", AvailabilityZone=f"eu-west-1{az}"
        )["Subnet"]["SubnetId"]
        for i, az in enumerate("ab")
    ]
    nlb = elbv2.create_load_balancer(Name="shop", Type="network", Subnets=subnets)
    nlb_arn = nlb["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elbv2.create_target_group(
        Name="shop-443", Protocol="TCP", Port=443, VpcId=vpc, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=nlb_arn,
        Protocol="TCP",
        Port=443,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )
    elbv2.register_targets(
        TargetGroupArn=tg,
        Targets=[
            {"Id": "172.17.10.11", "Port": 8443, "AvailabilityZone": "all"},
            {"Id": "10.10.0.5", "Port": 8443},
        ],
    )
    described = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    assert sorted((d["Target"]["Id"], d["Target"]["Port"]) for d in described) == [
        ("10.10.0.5", 8443),
        ("172.17.10.11", 8443),
    ]
    listeners = elbv2.describe_listeners(LoadBalancerArn=nlb_arn)["Listeners"]
    assert [(li["Protocol"], li["Port"]) for li in listeners] == [("TCP", 443)]


def test_each_test_starts_from_an_empty_moto(elbv2):
    assert elbv2.describe_target_groups()["TargetGroups"] == []
