#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let boot = shared::Boot::from_env("publisher", publisher::NEEDS).await;
    let function = publisher::Publisher::new(&boot);
    shared::batch::run(|event| function.handle(event)).await
}
