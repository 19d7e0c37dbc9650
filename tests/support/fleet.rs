//! Seeding a fleet in moto through the real aws-sdk-ec2 client.

use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification, TrafficMirrorSession};

/// An image in moto 5.2.5's built-in list. Listing the images takes moto about two seconds,
/// so the id is fixed instead.
pub const MOTO_IMAGE_ID: &str = "ami-03cf127a";

/// A VPC with one subnet in moto, and helpers to add instances, targets, filters and sessions.
pub struct Fleet {
    pub ec2: aws_sdk_ec2::Client,
    pub vpc: String,
    subnet: String,
    image: String,
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()
}

impl Fleet {
    pub async fn new(ec2: aws_sdk_ec2::Client) -> Self {
        let vpc = ec2.create_vpc().cidr_block("10.20.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("10.20.1.0/24")
            .availability_zone("us-east-1a")
            .send()
            .await
            .unwrap()
            .subnet
            .unwrap()
            .subnet_id
            .unwrap();
        Fleet { ec2, vpc, subnet, image: MOTO_IMAGE_ID.to_string() }
    }

    /// Launches one instance with `interfaces` attached ENIs; returns its id and ENI ids.
    pub async fn launch(
        &self,
        instance_type: &str,
        tag_pairs: &[(&str, &str)],
        interfaces: usize,
    ) -> (String, Vec<String>) {
        let output = self
            .ec2
            .run_instances()
            .image_id(&self.image)
            .instance_type(InstanceType::from(instance_type))
            .min_count(1)
            .max_count(1)
            .subnet_id(&self.subnet)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags(tag_pairs)))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let instance = &output.instances()[0];
        let instance_id = instance.instance_id().unwrap().to_string();
        let mut enis = vec![instance.network_interfaces()[0].network_interface_id().unwrap().to_string()];
        for device_index in 1..interfaces {
            let eni = self
                .ec2
                .create_network_interface()
                .subnet_id(&self.subnet)
                .send()
                .await
                .unwrap()
                .network_interface
                .unwrap()
                .network_interface_id
                .unwrap();
            self.ec2
                .attach_network_interface()
                .network_interface_id(&eni)
                .instance_id(&instance_id)
                .device_index(device_index as i32)
                .send()
                .await
                .unwrap();
            enis.push(eni);
        }
        (instance_id, enis)
    }

    /// Creates a target: on an ENI when given, otherwise on a Network Load Balancer.
    pub async fn target(&self, eni: Option<&str>) -> String {
        let mut request = self.ec2.create_traffic_mirror_target();
        request = match eni {
            Some(eni) => request.network_interface_id(eni),
            None => request.network_load_balancer_arn(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/ids/0123456789abcdef",
            ),
        };
        request.send().await.unwrap().traffic_mirror_target.unwrap().traffic_mirror_target_id.unwrap()
    }

    pub async fn filter(&self) -> String {
        let output = self.ec2.create_traffic_mirror_filter().send().await.unwrap();
        output.traffic_mirror_filter.unwrap().traffic_mirror_filter_id.unwrap()
    }

    /// Creates a session as another tool would, with the given tags.
    pub async fn session(
        &self,
        eni: &str,
        target: &str,
        filter: &str,
        number: i32,
        tag_pairs: &[(&str, &str)],
    ) -> String {
        let mut request = self
            .ec2
            .create_traffic_mirror_session()
            .network_interface_id(eni)
            .traffic_mirror_target_id(target)
            .traffic_mirror_filter_id(filter)
            .session_number(number);
        if !tag_pairs.is_empty() {
            request = request.tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::TrafficMirrorSession)
                    .set_tags(Some(tags(tag_pairs)))
                    .build(),
            );
        }
        request.send().await.unwrap().traffic_mirror_session.unwrap().traffic_mirror_session_id.unwrap()
    }

    /// Returns every session in moto.
    pub async fn sessions(&self) -> Vec<TrafficMirrorSession> {
        self.ec2.describe_traffic_mirror_sessions().send().await.unwrap().traffic_mirror_sessions().to_vec()
    }

    /// Returns the sessions whose source is `eni`.
    pub async fn sessions_on(&self, eni: &str) -> Vec<TrafficMirrorSession> {
        self.sessions().await.into_iter().filter(|s| s.network_interface_id() == Some(eni)).collect()
    }
}
