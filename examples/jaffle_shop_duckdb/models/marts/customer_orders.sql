select
    customer_id,
    count(*) as number_of_orders,
    min(order_date) as first_order_date,
    sum(case when status = 'returned' then 0 else amount end) as lifetime_value
from {{ ref('stg_orders') }}
group by customer_id
