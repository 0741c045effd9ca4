//! `CustomerService`. Members and invitations answer UNIMPLEMENTED until the members
//! issue lands.

use tonic::{Request, Response, Status};

use super::{convert, pb, request_key};
use crate::{
    app::{App, customers::CustomerLookup},
    domain::password::Password,
};

pub struct CustomerApi {
    app: App,
}

impl CustomerApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::customer_service_server::CustomerService for CustomerApi {
    async fn create_customer(
        &self,
        request: Request<pb::CreateCustomerRequest>,
    ) -> Result<Response<pb::CreateCustomerResponse>, Status> {
        let request = request.into_inner();
        let key = request_key(
            &self.app,
            "CreateCustomer",
            &request,
            &request.request_id,
            |r| r.request_id.clear(),
        )?;
        let fields = convert::customer_fields(request.customer.as_ref())?;
        let customer = self
            .app
            .create_customer(
                &fields,
                &Password::new(request.password.clone()),
                &request.owner_user_id,
                key,
            )
            .await?;
        Ok(Response::new(pb::CreateCustomerResponse {
            customer: Some((&customer).into()),
        }))
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::GetCustomerResponse>, Status> {
        use pb::get_customer_request::Lookup;
        let request = request.into_inner();
        let lookup = request.lookup.as_ref().map(|lookup| match lookup {
            Lookup::CustomerId(id) => CustomerLookup::Id(id),
            Lookup::Email(email) => CustomerLookup::Email(email),
            Lookup::ExternalId(external_id) => CustomerLookup::ExternalId(external_id),
            Lookup::CustomerKey(customer_key) => CustomerLookup::CustomerKey(customer_key),
            Lookup::Subdomain(subdomain) => CustomerLookup::Subdomain(subdomain),
            Lookup::Hostname(hostname) => CustomerLookup::Hostname(hostname),
        });
        let customer = self.app.get_customer(lookup).await?;
        Ok(Response::new(pb::GetCustomerResponse {
            customer: Some((&customer).into()),
        }))
    }

    async fn list_customers(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        let r = request.into_inner();
        let status = convert::customer_status("status", r.status)?;
        let customer_type = convert::customer_type("customer_type", r.customer_type)?;
        let (customers, next_page_token) = self
            .app
            .list_customers(
                status,
                customer_type,
                &r.country,
                &r.query,
                r.page_size,
                &r.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListCustomersResponse {
            customers: customers.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_customer(
        &self,
        request: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::UpdateCustomerResponse>, Status> {
        let r = request.into_inner();
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let fields = convert::customer_fields(r.customer.as_ref())?;
        let customer = self
            .app
            .update_customer(&r.customer_id, &r.etag, &mask, &fields)
            .await?;
        Ok(Response::new(pb::UpdateCustomerResponse {
            customer: Some((&customer).into()),
        }))
    }

    async fn delete_customer(
        &self,
        request: Request<pb::DeleteCustomerRequest>,
    ) -> Result<Response<pb::DeleteCustomerResponse>, Status> {
        let r = request.into_inner();
        self.app.delete_customer(&r.customer_id, &r.etag).await?;
        Ok(Response::new(pb::DeleteCustomerResponse {}))
    }
}
