-- Revenue per country for one business day: the figures finance signs off on.
SELECT country,
       COUNT(*)              AS orders,
       ROUND(SUM(amount), 2) AS revenue
FROM orders
WHERE order_date = :day
GROUP BY country
ORDER BY revenue DESC, country
